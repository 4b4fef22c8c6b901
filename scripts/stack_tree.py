"""(fo) A collapsed-stack profile (scripts/fixed_step.py --sample) as a tree under a frame: each
node's share of the samples under the first frame matching ``ROOT`` (default: the timed loop),
children at least ``MIN`` % shown.

    python scripts/stack_tree.py /tmp/fo/s.1 [ROOT] [MIN] [DEPTH]
"""
import collections
import sys

fn = sys.argv[1]
root = sys.argv[2] if len(sys.argv) > 2 else ":timed"
lo = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
depth = int(sys.argv[4]) if len(sys.argv) > 4 else 12
tree: dict = {}
tot = 0
for line in open(fn):
    st, _, n = line.rstrip().rpartition(" ")
    n = int(n)
    fr = st.split(";")
    k = next((i for i, x in enumerate(fr) if root in x), None)
    if k is None:
        continue
    tot += n
    node = tree
    for x in fr[k + 1:]:
        e = node.setdefault(x, [0, {}])
        e[0] += n
        node = e[1]


def show(node, ind, d):
    if d > depth:
        return
    for k, (n, ch) in sorted(node.items(), key=lambda x: -x[1][0]):
        if 100 * n / tot < lo:
            continue
        print(f"{'  ' * ind}{100 * n / tot:5.1f}% {k}")
        show(ch, ind + 1, d + 1)


print("CPU sampled (ms)", tot // 1000)
show(tree, 0, 0)
