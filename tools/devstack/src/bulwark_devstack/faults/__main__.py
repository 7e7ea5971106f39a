from bulwark_devstack.faults.run import main

main()
