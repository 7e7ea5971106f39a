from bulwark_api.cli import main

main()
