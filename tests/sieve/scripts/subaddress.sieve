require ["subaddress", "fileinto", "envelope"];
if address :detail "to" "projects" { fileinto "projects"; }
if address :user "to" "bob" { fileinto "user-bob"; }
if address :detail :is "bcc" "x+y" { fileinto "double-plus"; }
if envelope :detail "to" "tag" { fileinto "env-tag"; }
