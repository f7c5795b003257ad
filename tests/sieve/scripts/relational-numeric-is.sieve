require ["comparator-i;ascii-numeric", "fileinto"];
if header :is :comparator "i;ascii-numeric" "x-count" "0042" { fileinto "num-eq"; }
if header :is :comparator "i;ascii-numeric" "x-count" "xyz" { fileinto "both-infinite"; }
