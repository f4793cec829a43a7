"""The linter's checks, one module per concern.

`expressions`: CEL parse and type errors, result types, size and cost limits, regex literals.
`semantics`: checks inside one policy (duplicate names, ineffective ranges and rules, ...).
`policyset`: checks across the documents of one run (duplicate policy names, test references).
`constants`: tiny helpers shared by the above (constant folding, CEL string literals).
"""
