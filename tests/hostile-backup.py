#!/usr/bin/env python3
"""Writes a hostile backup tarball for tests/Backup.Tests.ps1: a valid index.yaml, then a root
with one attack in it (KIND), so the test sees the import refuse exactly that attack."""
import io
import json
import sys
import tarfile

kind, out, outside = sys.argv[1], sys.argv[2], sys.argv[3]
ROOT = "backup/container/rootfs/"

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


with open(out, "wb") as f:
    tar = tarfile.open(fileobj=f, mode="w", format=tarfile.PAX_FORMAT)
    body = json.dumps(index).encode()
    if kind == "bad-index":
        body = b"name: evil\nbackend: [unclosed\n"
    if kind == "index-missing-field":
        del index["config"]
        body = json.dumps(index).encode()
    member(tar, "backup/index.yaml", body)
    member(tar, ROOT, type=tarfile.DIRTYPE, mode=0o755)
    member(tar, ROOT + "bin", type=tarfile.DIRTYPE, mode=0o755)
    member(tar, ROOT + "bin/ok", b"fine\n")
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
    if kind == "huge":
        # A member that claims 100 TiB and carries 512 bytes: refused from its header alone.
        info = tarfile.TarInfo(ROOT + "huge")
        info.size = 100 << 40
        f.write(info.tobuf(tarfile.PAX_FORMAT))
        f.write(b"\0" * 512)
    else:
        tar.close()
