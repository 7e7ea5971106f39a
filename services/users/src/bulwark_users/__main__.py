from bulwark_users.cli import main

main()
