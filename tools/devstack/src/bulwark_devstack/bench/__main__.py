from bulwark_devstack.bench.run import main

main()
