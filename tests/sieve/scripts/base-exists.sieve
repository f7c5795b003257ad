if exists "list-id" { discard; stop; }
if not exists ["message-id", "date"] { redirect "missing@example.net"; }
