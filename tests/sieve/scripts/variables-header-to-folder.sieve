require ["variables", "fileinto"];
if address :localpart :matches "from" "*" { set "who" "${1}"; }
if address :domain :matches "from" "*" { set "where" "${0}"; }
fileinto "people/${where}/${who}";
