"""Reports: kernel-style text, Chrome/Perfetto traces, Graphviz lock graphs, catalog tables."""

from . import dot, perfetto, text, traceformat
from .dot import LockGraph, find_cycle, graph_from_edges, graph_from_events, to_dot
from .text import render_execution, render_finding
from .traceformat import validate as validate_trace

__all__ = [
    "LockGraph", "dot", "find_cycle", "graph_from_edges", "graph_from_events", "perfetto", "render_execution",
    "render_finding", "text", "to_dot", "traceformat", "validate_trace",
]
