"""In-tree step plugins: every name in a module's ``__all__`` is the plugin
``<module>.<name>``, called as ``fn(ctx, **args)`` with the engine's PluginContext."""
