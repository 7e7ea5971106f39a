from bulwark_devstack.soak.run import main

main()
