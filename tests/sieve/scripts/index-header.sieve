require ["index", "fileinto"];
if header :index 1 :is "x-count" "42" { fileinto "first-42"; }
if header :index 1 :last :is "x-count" "abc" { fileinto "last-abc"; }
if header :index 2 :is "from" "second@example.com" { fileinto "second-from"; }
if address :index 1 :last :is "from" "second@example.com" { fileinto "last-from"; }
