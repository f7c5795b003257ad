require "fileinto";
if header :matches "subject" "*[devel]*" { fileinto "devel"; }
if header :matches "subject" "Lunch on ???????" { fileinto "seven"; }
if header :matches "date" "*, ? Dec 2026 *" { fileinto "one-digit-day"; }
