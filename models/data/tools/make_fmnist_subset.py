#!/usr/bin/env python3
"""Cut the committed Fashion-MNIST subset out of the Debian package's full set.

Run once (after `apt-get install dataset-fashion-mnist`):
    python3 models/data/tools/make_fmnist_subset.py /usr/share/datasets/fashion-mnist models/data/fashion-mnist-subset

It keeps the first 10,000 training images and the first 2,000 test images, in the same IDX
format (gzip), so effbench reads the subset and the full set with one reader.
"""
import gzip
import struct
import sys


def cut(src, dst, count):
    with gzip.open(src, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    item = 1
    for d in dims[1:]:
        item *= d
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * ndim, count, *dims[1:])
    body = data[4 + 4 * ndim : 4 + 4 * ndim + count * item]
    assert len(body) == count * item, (src, len(body))
    # mtime=0 keeps the output byte-identical from one run to the next.
    with open(dst, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=9) as g:
        g.write(header + body)


def main():
    src, dst = sys.argv[1], sys.argv[2]
    for split, count in (("train", 10_000), ("t10k", 2_000)):
        for kind in ("images-idx3", "labels-idx1"):
            name = f"{split}-{kind}-ubyte.gz"
            cut(f"{src}/{name}", f"{dst}/{name}", count)
            print(f"{dst}/{name}: first {count}")


if __name__ == "__main__":
    main()
