require "fileinto";
if allof (exists "from", anyof (header :contains "subject" "release", address :domain "from" "example.fr"), not size :over 100K) { fileinto "both"; }
if anyof (false, not true) { discard; }
