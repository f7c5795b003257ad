require ["vacation", "fileinto"];
fileinto "Away";
vacation :handle "h1" "Away.";
