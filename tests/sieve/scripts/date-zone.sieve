require ["date", "fileinto", "variables"];
if date :zone "+0000" "date" "date" "*" { fileinto "utc-${0}"; }
