require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "gt" :comparator "i;ascii-numeric" "x-priority" "2" { fileinto "low-priority"; }
if header :value "lt" :comparator "i;ascii-numeric" "x-count" "10" { fileinto "small-count"; }
if header :value "ge" "subject" "W" { fileinto "late-subject"; }
if header :value "ne" :comparator "i;ascii-numeric" "x-count" "42" { fileinto "not-42"; }
