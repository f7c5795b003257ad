require ["variables", "fileinto"];
set "sub" "${unset}x";
if string :is "${sub}" "x" { fileinto "unset-empty"; }
if string :matches " ${sub} " "* x *" { fileinto "spaces"; }
if string :contains ["a", "${sub}"] "x" { fileinto "list"; }
