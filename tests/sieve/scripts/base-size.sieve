require "fileinto";
if size :over 2K { fileinto "big"; } elsif size :under 500 { fileinto "small"; } else { fileinto "medium"; }
