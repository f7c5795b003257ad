require ["fileinto", "comparator-i;octet"];
if header :comparator "i;octet" :contains "subject" "lunch" { fileinto "lower"; }
if header :comparator "i;octet" :contains "subject" "Lunch" { fileinto "upper"; }
if header :comparator "i;octet" :matches "from" "*EXAMPLE*" { fileinto "shout"; }
