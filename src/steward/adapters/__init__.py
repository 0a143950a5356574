"""Adapters: the outside world (object storage, tickets, mail) behind small interfaces."""
