require ["date", "fileinto", "relational"];
if date :originalzone "date" "year" "2026" { fileinto "y2026"; }
if date :originalzone "date" "month" "12" { fileinto "december"; }
if date :originalzone "date" "weekday" "2" { fileinto "tuesday"; }
if date :originalzone "date" "zone" "-0500" { fileinto "eastern"; }
