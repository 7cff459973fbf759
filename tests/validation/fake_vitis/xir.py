"""A fake of Vitis AI's ``xir`` module for tests: a compiled graph with one CPU and one DPU subgraph."""

from __future__ import annotations

from typing import Any


class Subgraph:
    def __init__(self, name: str, attrs: dict[str, Any], children: list[Subgraph] | None = None) -> None:
        self.name = name
        self.attrs = attrs
        self.children = children or []

    def has_attr(self, key: str) -> bool:
        return key in self.attrs

    def get_attr(self, key: str) -> Any:
        return self.attrs[key]

    def toposort_child_subgraph(self) -> list[Subgraph]:
        return list(self.children)


class Graph:
    def __init__(self, root: Subgraph) -> None:
        self.root = root

    @staticmethod
    def deserialize(path: str) -> Graph:
        with open(path, "rb") as fh:
            n_dpu = int(fh.read().decode() or "1")  # the fake xmodel file holds its number of DPU subgraphs
        children = [Subgraph("input", {"device": "CPU"})]
        children += [
            Subgraph(f"dpu{i}", {"device": "DPU", "dpu_fingerprint": "0xfake"}) for i in range(n_dpu)
        ]
        return Graph(Subgraph("root", {}, children))

    def get_root_subgraph(self) -> Subgraph:
        return self.root
