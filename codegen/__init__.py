"""celgate.codegen: the policy compiler, checked policies -> plugin folders.

The pipeline, one module per stage: `compile.py` (lint, then drive the rest) -> `bundle.py`
(group policies into plugins, lower each to its plan, content hash) -> `manifest.py`
(capabilities, permissions, config schema) and `emit.py` (the plugin module, with policy data
embedded by `literal.py`). `policy_plugin.py` is the shared runtime generated plugins import;
`cmd_compile.py` is the `celgate compile` command.
"""
