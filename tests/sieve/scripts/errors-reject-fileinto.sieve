require ["reject", "fileinto"];
fileinto "A";
if exists "list-id" { reject "no lists"; }
