"""What a lab left on AWS (moto), listed by each service's own API rather than lab's finder:
every resource type lab makes that carries the lab's name tag. Unit and integration tests
end by asserting it is empty."""

from __future__ import annotations

import boto3

REGION = "eu-west-1"


def leftovers(lab: str) -> dict[str, list[str]]:
    """Every resource type lab makes, listed by its own API, that carries ``lab.name=lab``."""
    ec2 = boto3.client("ec2", region_name=REGION)
    elb = boto3.client("elbv2", region_name=REGION)
    tag = [{"Name": "tag:lab.name", "Values": [lab]}]
    found = {
        "instances": [i["InstanceId"] for r in ec2.describe_instances(Filters=tag)["Reservations"]
                      for i in r["Instances"] if i["State"]["Name"] != "terminated"],
        "volumes": [v["VolumeId"] for v in ec2.describe_volumes(Filters=tag)["Volumes"]],
        "key_pairs": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=tag)["KeyPairs"]],
        "launch_templates": [t["LaunchTemplateName"] for t in
                             ec2.describe_launch_templates(Filters=tag)["LaunchTemplates"]],
        "security_groups": [g["GroupId"] for g in
                            ec2.describe_security_groups(Filters=tag)["SecurityGroups"]],
        "images": [i["ImageId"] for i in ec2.describe_images(Owners=["self"],
                                                             Filters=tag)["Images"]],
        "snapshots": [s["SnapshotId"] for s in ec2.describe_snapshots(
            OwnerIds=["self"], Filters=tag)["Snapshots"]],
    }
    balancers = [b["LoadBalancerArn"] for b in elb.describe_load_balancers()["LoadBalancers"]]
    groups = [g["TargetGroupArn"] for g in elb.describe_target_groups()["TargetGroups"]]
    listeners = [listener["ListenerArn"] for arn in balancers
                 for listener in elb.describe_listeners(LoadBalancerArn=arn)["Listeners"]]
    tagged = {d["ResourceArn"] for d in (elb.describe_tags(ResourceArns=balancers + groups +
                                                           listeners)["TagDescriptions"]
                                         if balancers + groups + listeners else [])
              if {"Key": "lab.name", "Value": lab} in d["Tags"]}
    found["load_balancers"] = [a for a in balancers if a in tagged]
    found["target_groups"] = [a for a in groups if a in tagged]
    found["listeners"] = [a for a in listeners if a in tagged]
    return {kind: ids for kind, ids in found.items() if ids}
