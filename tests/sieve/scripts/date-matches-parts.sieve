require ["date", "fileinto", "variables"];
if date :zone "+0000" :matches "date" "time" "*" { set "t" "${0}"; }
if date :zone "+0000" :matches "date" "iso8601" "*" { set "i" "${0}"; }
if date :zone "+0000" :matches "date" "julian" "*" { set "j" "${0}"; }
fileinto "${t}|${i}|${j}";
