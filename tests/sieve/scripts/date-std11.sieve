require ["date", "fileinto", "variables"];
if date :originalzone :matches "date" "std11" "*" { fileinto "${0}"; }
