require ["variables", "fileinto"];
if header :matches "subject" "[*] *" { fileinto "list/${1}/${2}"; }
elsif header :matches "from" "*<*@*>" { fileinto "from/${3}/${2}"; }
