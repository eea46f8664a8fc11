"""lab on AWS, through boto3: clients and errors, tags, the network, teardown, prices.

The target (``lab.targets.aws``) and the balancer (``lab.balancers.alb``) are built from these
modules; none of them imports either, so both can share them without a cycle.
"""
