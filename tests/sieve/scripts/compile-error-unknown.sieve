require "fileinto";
if header :frobnicate "subject" "x" { fileinto "y"; }
