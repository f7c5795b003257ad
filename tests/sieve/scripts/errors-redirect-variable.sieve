require "variables";
if header :matches "subject" "*" { redirect "${0}"; }
