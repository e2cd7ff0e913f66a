"""An example Conveyor plugin: each module adds one kind of extension through an entry point."""
