require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3" { fileinto "many"; }
if header :count "eq" :comparator "i;ascii-numeric" "x-count" "3" { fileinto "three-x"; }
if header :count "eq" :comparator "i;ascii-numeric" "received" "0" { fileinto "no-received"; }
