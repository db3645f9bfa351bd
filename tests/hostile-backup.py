#!/usr/bin/env python3
"""Writes a hostile backup tarball for tests/Backup.Tests.ps1.

hostile-backup.py KIND OUT OUTSIDE [FINGERPRINT]: a valid index.yaml, then a root with one attack
in it (KIND), so the test sees the import refuse exactly that attack; OUTSIDE is the host directory
an escape would reach. The stateful-* kinds claim a migration.stateful systemd container (the one
the engine writes its checkpoint drop-in into) made from FINGERPRINT's image.

hostile-backup.py inject-KIND OUT OUTSIDE SOURCE: SOURCE (a real export) with criu images put
where a plain import must never take them as the container's saved state."""
import copy
import io
import json
import sys
import tarfile

kind, out, outside = sys.argv[1], sys.argv[2], sys.argv[3]
ROOT = "backup/container/rootfs/"
IMAGES = "backup/checkpoint/"
DROPIN_DIR = ROOT + "etc/systemd/system/service.d"
# What criu's images would hold; the test looks for it wherever the import wrote.
PLANTED = b"CRIU-IMAGE-PLANTED\n"
# More '..' than any state directory is deep: from a root that is a host directory, they reach /.
UP = "../" * 24

index = {
    "name": "evil", "backend": "dir", "pool": "default", "type": "container", "optimized": False,
    "optimized_header": False, "snapshots": [],
    "config": {"container": {"name": "evil", "config": {}, "created_at": "2026-01-01T00:00:00Z",
                             "image_fingerprint": "0" * 64, "image_alias": None, "init_kind": "busybox"},
               "snapshots": []},
}


def member(tar, name, data=b"", **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = attrs.pop("mode", 0o644)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def images(tar, prefix=IMAGES):
    member(tar, prefix + "inventory.img", PLANTED)
    member(tar, prefix + "pages-1.img", PLANTED)


def renamed(m, old, new):
    """A copy of member m with its name (and a hardlink's target) moved from prefix old to new."""
    c = copy.copy(m)
    # A pax header's path wins over the name: it goes, and is written again from the new name.
    c.pax_headers = {k: v for k, v in m.pax_headers.items() if k not in ("path", "linkpath")}
    c.name = new.rstrip("/") if m.name == old.rstrip("/") else new + m.name[len(old):]
    if m.islnk() and m.linkname.startswith(old):
        c.linkname = new + m.linkname[len(old):]
    return c


def inject(tar, source):
    """Copies SOURCE member by member, with the images put in as KIND says."""
    snapshot = "backup/snapshots/checkpoint/rootfs/"
    with tarfile.open(source) as src:
        members = src.getmembers()
        root = [m for m in members if m.name == ROOT.rstrip("/") or m.name.startswith(ROOT)]
        for m in members:
            data = src.extractfile(m).read() if m.isreg() else None
            if m.name == "backup/index.yaml" and kind == "inject-snapshot":
                # A snapshot named as the saved state's directory, holding images beside its root.
                doc = json.loads(data)
                doc["snapshots"] = ["checkpoint"]
                doc["config"]["snapshots"] = [{"name": "checkpoint", "created_at": "2026-01-01T00:00:00Z"}]
                data = json.dumps(doc).encode()
                m.size = len(data)
            if kind == "inject-snapshot" and m is root[0]:
                # Snapshots come before the container's root, as an export writes them.
                for r in root:
                    tar.addfile(renamed(r, ROOT, snapshot), src.extractfile(r) if r.isreg() else None)
                images(tar, snapshot)
            tar.addfile(m, io.BytesIO(data) if data is not None else None)
        if kind == "inject-after":
            images(tar)
        elif kind == "inject-incus":
            # Where Incus keeps the instance's own files beside its rootfs, which the import passes over.
            images(tar, "backup/container/checkpoint/")
        elif kind != "inject-snapshot":
            raise SystemExit(f"unknown kind {kind}")


with open(out, "wb") as f:
    tar = tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT)
    if kind.startswith("inject-"):
        inject(tar, sys.argv[4])
        tar.close()
        sys.exit(0)
    if kind.startswith("stateful-") or kind.startswith("checkpoint-") and kind != "checkpoint-plain":
        container = index["config"]["container"]
        container["config"] = {"migration.stateful": "true"}
        container["init_kind"] = "systemd"
        if len(sys.argv) > 4:
            container["image_fingerprint"] = sys.argv[4]
    body = json.dumps(index).encode()
    if kind == "bad-index":
        body = b"name: evil\nbackend: [unclosed\n"
    if kind == "index-missing-field":
        del index["config"]
        body = json.dumps(index).encode()
    member(tar, "backup/index.yaml", body)
    if kind == "checkpoint-first":
        images(tar)
    member(tar, ROOT, type=tarfile.DIRTYPE, mode=0o755)
    member(tar, ROOT + "bin", type=tarfile.DIRTYPE, mode=0o755)
    member(tar, ROOT + "bin/ok", b"fine\n")
    if kind.startswith("stateful-"):
        for d in ("etc", "etc/systemd"):
            member(tar, ROOT + d, type=tarfile.DIRTYPE, mode=0o755)
        if kind in ("stateful-units-symlink", "stateful-units-up"):
            member(tar, ROOT + "etc/systemd/system", type=tarfile.SYMTYPE, linkname=outside if kind == "stateful-units-symlink" else UP + outside[1:])
        else:
            member(tar, ROOT + "etc/systemd/system", type=tarfile.DIRTYPE, mode=0o755)
    if kind == "dotdot":
        member(tar, ROOT + "../../../.." + outside + "/pwned", b"escaped\n")
    elif kind == "absolute":
        member(tar, outside + "/pwned", b"escaped\n")
    elif kind == "symlink-escape":
        member(tar, ROOT + "esc", type=tarfile.SYMTYPE, linkname=outside)
        member(tar, ROOT + "esc/pwned", b"escaped\n")
    elif kind == "hardlink-out":
        member(tar, ROOT + "hl", type=tarfile.LNKTYPE, linkname=outside + "/target")
    elif kind == "device":
        member(tar, ROOT + "dev-sda", type=tarfile.BLKTYPE, devmajor=8, devminor=0, mode=0o666)
    elif kind == "fifo":
        member(tar, ROOT + "pipe", type=tarfile.FIFOTYPE)
    elif kind == "setuid-outside":
        member(tar, ROOT + "bin/su-host", b"\x7fELF", mode=0o4755, uid=1000000, gid=0)
    elif kind == "stateful-dir-symlink":
        member(tar, DROPIN_DIR, type=tarfile.SYMTYPE, linkname=outside)
    elif kind == "stateful-dir-up":
        member(tar, DROPIN_DIR, type=tarfile.SYMTYPE, linkname=UP + outside[1:])
    elif kind.startswith("stateful-file-"):
        member(tar, DROPIN_DIR, type=tarfile.DIRTYPE, mode=0o755)
        name = DROPIN_DIR + "/10-systemcontainers-checkpoint.conf"
        if kind == "stateful-file-symlink":
            member(tar, name, type=tarfile.SYMTYPE, linkname=outside + "/target")
        elif kind == "stateful-file-up":
            member(tar, name, type=tarfile.SYMTYPE, linkname=UP + outside[1:] + "/target")
        elif kind == "stateful-file-hardlink":
            member(tar, name, type=tarfile.LNKTYPE, linkname=outside + "/target")
        elif kind == "stateful-file-fifo":
            member(tar, name, type=tarfile.FIFOTYPE)
        elif kind == "stateful-file-device":
            member(tar, name, type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
    elif kind in ("checkpoint-images", "checkpoint-plain"):
        images(tar)
    elif kind == "checkpoint-symlink":
        member(tar, "backup/checkpoint", type=tarfile.SYMTYPE, linkname=outside)
        member(tar, IMAGES + "inventory.img", PLANTED)
    elif kind == "checkpoint-file-symlink":
        member(tar, IMAGES + "inventory.img", type=tarfile.SYMTYPE, linkname=outside + "/target")
    elif kind == "checkpoint-hardlink":
        member(tar, IMAGES + "inventory.img", type=tarfile.LNKTYPE, linkname=outside + "/target")
    elif kind == "checkpoint-device":
        member(tar, IMAGES + "inventory.img", type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
    elif kind == "checkpoint-dotdot":
        member(tar, IMAGES + "../../../.." + outside + "/pwned", PLANTED)
    if kind == "huge":
        # A member that claims 100 TiB and carries 512 bytes: refused from its header alone.
        info = tarfile.TarInfo(ROOT + "huge")
        info.size = 100 << 40
        f.write(info.tobuf(tarfile.PAX_FORMAT))
        f.write(b"\0" * 512)
    else:
        tar.close()
