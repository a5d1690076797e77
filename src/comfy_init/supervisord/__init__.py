"""supervisord: render its config, talk to it over XML-RPC, run it under PID 1."""
