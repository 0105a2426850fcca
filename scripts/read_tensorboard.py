#!/usr/bin/env python3
"""Dump what TensorBoard itself reads from one run directory, as one JSON object on stdout.

Usage: read_tensorboard.py RUN_DIR

This checks the trainer's hand-written event files with TensorBoard's own reader
(EventAccumulator) and its plugins' protobufs, so "TensorBoard can show it" is tested
rather than assumed. Output keys: scalars {tag: [[step, value], ...]}, images
{tag: [{step, width, height}, ...]}, texts {tag: [[step, text], ...]}, hparams {name: value},
metrics [tag, ...], session_status (e.g. "STATUS_SUCCESS", or null), and projector (the
projector_config.pbtxt embeddings, each with the rows/cols of its TSV and its label count, or
null), and graph (the Graphs tab's nodes as EventAccumulator.Graph() reads them: name, op,
inputs and _output_shapes, or null). Exits non-zero with a message if RUN_DIR holds no event file.
"""

import glob
import json
import os
import sys

from google.protobuf import json_format, text_format
from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.projector import projector_config_pb2


def read_projector(run_dir):
    path = os.path.join(run_dir, "projector_config.pbtxt")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        config = text_format.Parse(f.read(), projector_config_pb2.ProjectorConfig())
    embeddings = []
    for info in config.embeddings:
        entry = json_format.MessageToDict(info, preserving_proto_field_name=True)
        with open(os.path.join(run_dir, info.tensor_path)) as f:
            rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
        widths = sorted({len(r) for r in rows})  # a single width unless the TSV is ragged
        entry["rows"], entry["cols"] = len(rows), widths[0] if len(widths) == 1 else widths
        if info.metadata_path:
            with open(os.path.join(run_dir, info.metadata_path)) as f:
                entry["labels"] = len(f.read().splitlines())
        embeddings.append(entry)
    return {"embeddings": embeddings}


def read_graph(acc):
    try:
        graph = acc.Graph()
    except ValueError:  # no graph in the run
        return None
    return [
        {
            "name": node.name,
            "op": node.op,
            "inputs": list(node.input),
            "shapes": [[dim.size for dim in shape.dim] for shape in node.attr["_output_shapes"].list.shape],
        }
        for node in graph.node
    ]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run_dir = sys.argv[1]
    if not glob.glob(os.path.join(run_dir, "*tfevents*")):
        sys.exit(f"error: no TensorBoard event file (*tfevents*) in {run_dir}")
    acc = ea.EventAccumulator(run_dir, size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    out = {
        "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
        "images": {
            t: [{"step": e.step, "width": e.width, "height": e.height} for e in acc.Images(t)]
            for t in tags["images"]
        },
        "texts": {
            t: [[e.step, e.tensor_proto.string_val[0].decode()] for e in acc.Tensors(t)]
            for t in acc.PluginTagToContent("text")
        },
        "hparams": {},
        "metrics": [],
        "session_status": None,
    }
    for content in acc.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        kind = data.WhichOneof("data")
        if kind == "experiment":
            out["metrics"] = [m.name.tag for m in data.experiment.metric_infos]
        elif kind == "session_start_info":
            for name, value in data.session_start_info.hparams.items():
                out["hparams"][name] = getattr(value, value.WhichOneof("kind"))
        elif kind == "session_end_info":
            out["session_status"] = api_pb2.Status.Name(data.session_end_info.status)
    out["projector"] = read_projector(run_dir)
    out["graph"] = read_graph(acc)
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
