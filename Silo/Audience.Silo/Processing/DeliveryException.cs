namespace Audience.Silo.Processing;

/// <summary>An output could not be delivered (the broker is unavailable); the worker pauses and tries again.</summary>
public sealed class DeliveryException(string message, Exception? inner = null) : Exception(message, inner);
