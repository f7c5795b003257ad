require ["date", "relational", "fileinto"];
if date :value "ge" :originalzone "date" "date" "2026-12-02" { fileinto "recent"; }
if date :value "lt" :zone "+0000" "date" "hour" "12" { fileinto "morning-utc"; }
