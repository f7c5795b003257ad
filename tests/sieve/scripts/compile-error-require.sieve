fileinto "nowhere";
