require ["date", "relational", "fileinto"];
if currentdate :value "ge" "year" "2024" { fileinto "now-ok"; }
if currentdate :zone "+0000" :value "lt" "date" "2000-01-01" { discard; }
