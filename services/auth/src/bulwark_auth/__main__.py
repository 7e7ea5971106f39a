from bulwark_auth.cli import main

main()
