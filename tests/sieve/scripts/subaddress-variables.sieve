require ["subaddress", "fileinto", "variables", "envelope"];
if envelope :matches :detail "to" "*" { fileinto "detail/${1}"; }
