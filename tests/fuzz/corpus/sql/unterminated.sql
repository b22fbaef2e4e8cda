SELECT 'never closed; 
  /* nor this; 
