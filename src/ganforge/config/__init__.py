"""Configuration: the schema of every key, the presets, validation, resolution of unset values, YAML.

Import from the modules: :mod:`.schema` (the dataclasses, key lookup and coercion), :mod:`.presets`,
:mod:`.validate`, :mod:`.resolve` (the only place an unset value is filled) and :mod:`.io` (YAML).
"""
