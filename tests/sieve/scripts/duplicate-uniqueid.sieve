require ["duplicate", "fileinto", "variables"];
if header :matches "subject" "*" { set "s" "${0}"; }
if duplicate :uniqueid "${s}" :seconds 3600 { discard; }
