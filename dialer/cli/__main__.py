from dialer.cli.main import main

main()
