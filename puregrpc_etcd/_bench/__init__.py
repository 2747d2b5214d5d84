"""``puregrpc-etcd benchmark`` and ``check perf``: etcd's benchmark tool in pure Python."""
