"""The `goodhart` command (main.py: the parser and the local verbs; one module per other verb
group): parse arguments, call engine functions, print tables. Holds no orchestration of its
own; may import every other room, and nothing imports it."""
