#!/usr/bin/python3
"""One step of the Redfish conformance check, done with sushy.

sushy (Debian's python3-sushy, OpenStack Ironic's Redfish library) is a
Redfish client the project did not write: a BMC it drives speaks Redfish
as Ironic expects. appliance/internal/lab's TestRedfishConformance runs
one step at a time and checks, between steps, what the step did to the
QEMU VM behind the lab's Redfish BMC.

    redfish-conformance-sushy.py URL USERNAME STEP [ARG...]

The password is in the environment variable RF_PASSWORD, not on the
command line. The CA (or the BMC's own certificate) that verifies the
BMC is in RF_CA; without it the certificate is not verified. Steps:

    get                      print the system's power state and boot override
    reset TYPE               ComputerSystem.Reset (On, ForceOff, ...)
    boot TARGET ENABLED      set_system_boot_options (Pxe, Cd, ...; Once, Continuous)
    insert URL               the manager's CD: insert_media
    eject                    the manager's CD: eject_media
    media                    print the CD's image and whether it is inserted

Each step prints one line "ok STEP key=value..." and exits 0, or prints
what failed and exits 1.
"""
import os
import sys

import sushy


def main(argv):
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    url, user, step, args = argv[1], argv[2], argv[3], argv[4:]
    verify = os.environ.get("RF_CA") or False
    # requests would verify against these bundles instead of RF_CA.
    os.environ.pop("REQUESTS_CA_BUNDLE", None)
    os.environ.pop("CURL_CA_BUNDLE", None)
    conn = sushy.Sushy(url + "/redfish/v1/", username=user,
                       password=os.environ["RF_PASSWORD"], verify=verify)
    systems = conn.get_system_collection().get_members()
    if len(systems) != 1:
        raise SystemExit("want one system, got %d" % len(systems))
    system = systems[0]
    if step == "get":
        print("ok get power=%s target=%s enabled=%s" % (
            system.power_state.value, system.boot.target.value,
            system.boot.enabled.value))
    elif step == "reset":
        system.reset_system(sushy.ResetType(args[0]))
        print("ok reset %s" % args[0])
    elif step == "boot":
        system.set_system_boot_options(
            target=sushy.BootSource(args[0]),
            enabled=sushy.BootSourceOverrideEnabled(args[1]))
        system.refresh()
        print("ok boot target=%s enabled=%s" % (
            system.boot.target.value, system.boot.enabled.value))
    elif step in ("insert", "eject", "media"):
        return media(conn, step, args)
    else:
        raise SystemExit("unknown step " + step)
    return 0


def media(conn, step, args):
    managers = conn.get_manager_collection().get_members()
    cds = [m for mgr in managers
           for m in mgr.virtual_media.get_members()
           if sushy.VirtualMediaType.CD in m.media_types]
    if not cds:
        raise SystemExit("no virtual CD drive")
    cd = cds[0]
    if step == "insert":
        cd.insert_media(args[0])
    elif step == "eject":
        cd.eject_media()
    cd.refresh()
    print("ok %s image=%s inserted=%s" % (step, cd.image or "", cd.inserted))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
