require ["vacation", "reject"];
if exists "precedence" { reject "bulk"; }
vacation "away";
