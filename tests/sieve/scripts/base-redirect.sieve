if header :contains "subject" "lunch" { redirect "bob@elsewhere.example"; }
if exists "list-id" { redirect "archive@example.net"; redirect "archive@example.net"; }
